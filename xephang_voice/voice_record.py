"""``xephang voice record``: a centre records its own human voice pack with a USB microphone.

The flow, per clip: show the words, wait for Enter, record a few seconds, trim silence,
check (not empty, not clipped), normalise loudness, play it back, ask keep / redo / quit.
Kept clips are written at once (an interrupted session keeps them: run again with
``--only`` for the rest); the manifest is written last and the pack validated.

The microphone, the speaker and the person are seams (:class:`Recorder`, :class:`Playback`,
:class:`Prompter`) so tests drive the flow with synthetic audio.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from xephang_voice import pcm
from xephang_voice.numbers import DEFAULT_OPTIONS, ReadingOptions
from xephang_voice.voicepack import (  # WORD_MAX_S, PHRASE_MAX_S, is_phrase: the pack check's own limits
    PHRASE_MAX_S,
    WORD_MAX_S,
    ClipEntry,
    InvalidPack,
    Language,
    Manifest,
    catalogue,
    is_phrase,
    read_manifest,
    required_clips,
    validate_pack,
    write_pack,
)

log = logging.getLogger(__name__)


class RecordingError(RuntimeError):
    """The recording session could not go on (no microphone, too many failed takes)."""


class RecordingAborted(RecordingError):
    """The person chose to stop."""


class Recorder(Protocol):
    """A microphone: ``record(seconds)`` → mono s16 samples at ``sample_rate``."""

    sample_rate: int

    def record(self, seconds: float) -> array: ...


class Playback(Protocol):
    """Plays a take back to the person recording."""

    def play(self, samples: array, sample_rate: int) -> None: ...


class Prompter(Protocol):
    """Talks to the person recording."""

    def say(self, text: str) -> None: ...

    def ask(self, text: str) -> str: ...


class ArecordRecorder:
    """ALSA's ``arecord`` as a separate program (``-D`` device, e.g. ``plughw:1,0`` for a USB mic)."""

    def __init__(self, *, device: str = "default", sample_rate: int = 48000) -> None:
        self.device = device
        self.sample_rate = sample_rate

    def record(self, seconds: float) -> array:
        exe = shutil.which("arecord")
        if not exe:
            raise RecordingError("arecord is not installed (Debian: apt-get install alsa-utils)")
        cmd = [exe, "-q", "-D", self.device, "-f", "S16_LE", "-c", "1", "-r", str(self.sample_rate),
               "-d", str(max(1, round(seconds))), "-t", "raw"]
        proc = subprocess.run(cmd, capture_output=True, timeout=seconds + 10, check=False)
        if proc.returncode != 0:
            raise RecordingError(f"arecord failed: {proc.stderr.decode(errors='replace')[:200]}")
        return pcm.from_bytes(proc.stdout)


class AplayPlayback:
    """Plays a take with ALSA's ``aplay`` (a separate program)."""

    def __init__(self, *, device: str = "default") -> None:
        self.device = device

    def play(self, samples: array, sample_rate: int) -> None:
        exe = shutil.which("aplay")
        if not exe:
            log.warning("aplay is not installed: skipping playback")
            return
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            pcm.write_wav(Path(f.name), samples, sample_rate)
            subprocess.run([exe, "-q", "-D", self.device, f.name], timeout=60, check=False)


class ConsolePrompter:
    """stdin/stdout."""

    def say(self, text: str) -> None:
        print(text, flush=True)

    def ask(self, text: str) -> str:
        try:
            return input(text + " ").strip().lower()
        except EOFError:
            return "q"


MIN_S = 0.08
CLIP_DBFS = -0.3  # a raw take peaking above this was clipped by the microphone or the converter
MIN_SNR_DB = 20.0  # speech this much above the room's noise (measured in the take's own pauses)


@dataclass(frozen=True)
class Take:
    """One recorded take, processed as every recorded clip is: trimmed, checked, evened.

    ``problem`` is empty when the take can be kept; otherwise ``message_vi``/``message_en``
    say what to do differently.  ``samples`` are at ``sample_rate`` (the pack's), normalised.
    """

    samples: array
    sample_rate: int
    problem: str  # "", silent, short, long, clipped, noisy
    message_vi: str
    message_en: str
    duration_s: float
    peak_dbfs: float
    noise_dbfs: float | None  # level of the pauses around the speech (None: the take had none)
    snr_db: float | None

    @property
    def ok(self) -> bool:
        return not self.problem

    @property
    def message(self) -> str:
        return f"{self.message_vi} / {self.message_en}" if self.problem else ""


TAKE_PROBLEMS: dict[str, tuple[str, str]] = {
    "silent": ("Không nghe thấy tiếng — đọc to hơn, gần micro hơn.", "Nothing heard: speak louder, closer."),
    "short": ("Tiếng quá ngắn — đọc trọn cả từ, rõ ràng.", "Too short: say the whole word clearly."),
    "long": ("Bản thu quá dài ({s:.1f} giây, tối đa {m:.1f}) — chỉ đọc đúng chữ trên màn hình, rồi dừng.",
             "Too long ({s:.1f} s, at most {m:.1f}): say only the words shown, then stop."),
    "clipped": ("Tiếng bị méo (quá to) — lùi xa micro một chút.", "Clipped: move back from the microphone."),
    "noisy": ("Nền ồn quá (tiếng chỉ to hơn tiếng ồn {snr:.0f} dB, cần {need:.0f} dB) — đóng cửa, tắt quạt, "
              "đọc gần micro hơn.",
              "Too much background noise (speech only {snr:.0f} dB above it, need {need:.0f} dB): close the door, "
              "stop the fan, speak closer."),
}


def _noise_floor(raw: array, rate: int) -> float | None:
    """Level of the take's pauses (lower quartile of their 20 ms frames): the frames before the
    first and after the last frame within 15 dB of the loudest. None under 200 ms of pause
    (a take already cut to the word: nothing to measure)."""
    frame = max(1, rate // 50)
    levels = []
    for i in range(0, len(raw) - frame + 1, frame):
        chunk = raw[i : i + frame]
        levels.append(pcm.db((sum(s * s for s in chunk) / len(chunk)) ** 0.5 / pcm.FULL_SCALE))
    if not levels:
        return None
    loud = [i for i, v in enumerate(levels) if v >= max(levels) - 15]
    pauses = levels[: loud[0]] + levels[loud[-1] + 1 :]
    if len(pauses) < 10:
        return None
    return sorted(pauses)[len(pauses) // 4]


def process_take(raw: array, rate: int, *, phrase: bool, sample_rate: int = 24000,
                 loudness_dbfs: float = -20.0) -> Take:
    """Trim silence, check (silent, too short or long, clipped, noisy), resample, even the loudness.

    The one way a recorded clip becomes a pack clip: the console wizard and the web page both
    call it.  ``phrase``: a carrier phrase (longer limit) rather than one word.
    """
    trimmed = pcm.trim_silence(raw, rate)
    duration = len(trimmed) / rate
    peak = pcm.peak_dbfs(raw)
    noise = snr = None
    problem, fmt = "", {}
    if len(trimmed) < rate * MIN_S:
        problem = "silent" if pcm.peak_dbfs(trimmed) <= pcm.SILENCE_DBFS or not trimmed else "short"
    elif pcm.peak_dbfs(trimmed) > CLIP_DBFS:
        problem = "clipped"
    else:
        limit = PHRASE_MAX_S if phrase else WORD_MAX_S
        noise = _noise_floor(raw, rate)
        if noise is not None:
            snr = pcm.loudness_dbfs(trimmed, rate) - noise
        if duration > limit:
            problem, fmt = "long", {"s": duration, "m": limit}
        elif snr is not None and snr < MIN_SNR_DB:
            problem, fmt = "noisy", {"snr": snr, "need": MIN_SNR_DB}
    if problem:
        vi, en = TAKE_PROBLEMS[problem]
        return Take(array("h"), sample_rate, problem, vi.format(**fmt), en.format(**fmt), duration, peak, noise, snr)
    samples = pcm.normalise(pcm.resample(trimmed, rate, sample_rate), sample_rate, target_dbfs=loudness_dbfs)
    return Take(samples, sample_rate, "", "", "", duration, peak, noise, snr)


def clip_plan(language: Language = "vi", options: ReadingOptions = DEFAULT_OPTIONS, *,
              letters: str = "") -> list[tuple[str, str]]:
    """Every clip a site's pack needs, in recording order: (clip id, words to say)."""
    texts = catalogue(language)
    wanted = sorted(required_clips(language, options, letters=letters), key=list(texts).index)
    return [(c, texts[c]) for c in wanted]


def finish_pack(out: Path, kept: dict[str, ClipEntry], *, language: Language = "vi", dialect: str = "north",
                options: ReadingOptions = DEFAULT_OPTIONS, letters: str = "", name: str = "",
                sample_rate: int = 24000, loudness_dbfs: float = -20.0,
                source: str = "recorded with xephang voice record") -> list:
    """Write the manifest of recorded clips already in ``out`` and validate the pack (problems; empty = good)."""
    manifest = Manifest(name=name or f"recorded-{language}-{dialect}", language=language,
                        dialect=dialect if language == "vi" else "", sample_rate=sample_rate,
                        loudness_dbfs=loudness_dbfs, source=source, clips=kept)
    write_pack(out, manifest, {})
    return validate_pack(out, options=options, letters=letters)


def record_pack(out_dir: Path | str, *, recorder: Recorder, playback: Playback, prompter: Prompter,
                language: Language = "vi", dialect: str = "north", options: ReadingOptions = DEFAULT_OPTIONS,
                letters: str = "", only: Iterable[str] | None = None, name: str = "",
                sample_rate: int = 24000, loudness_dbfs: float = -20.0, word_seconds: float = 2.0,
                phrase_seconds: float = 4.0, max_takes: int = 5) -> Path:
    """Guide a recording session and write a validated pack to ``out_dir``.

    Records every required clip (or only ``only``; clips already in ``out_dir`` are kept).
    Raises :class:`InvalidPack` if the result does not validate.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = catalogue(language)
    wanted = [c for c, _ in clip_plan(language, options, letters=letters)]
    existing: dict[str, ClipEntry] = {}
    if (out / "manifest.json").exists():
        try:
            existing = dict(read_manifest(out).clips)
        except InvalidPack:
            existing = {}
    todo = [c for c in (list(only) if only else wanted) if only or c not in existing]
    unknown = [c for c in todo if c not in texts]
    if unknown:
        raise RecordingError(f"unknown clip ids: {unknown}")
    prompter.say(f"Thu âm {len(todo)} từ. Đọc rõ, chậm, giọng đều. / Recording {len(todo)} clips: clear, slow, even.")
    kept: dict[str, ClipEntry] = dict(existing)
    for i, clip in enumerate(todo, 1):
        text = texts[clip]
        seconds = phrase_seconds if is_phrase(text) else word_seconds
        samples = _record_one(clip, text, i, len(todo), seconds, recorder=recorder, playback=playback,
                              prompter=prompter, rate=sample_rate, loudness_dbfs=loudness_dbfs, max_takes=max_takes)
        pcm.write_wav(out / f"{clip}.wav", samples, sample_rate)
        kept[clip] = ClipEntry(text=text, file=f"{clip}.wav")
    problems = finish_pack(out, kept, language=language, dialect=dialect, options=options, letters=letters,
                           name=name, sample_rate=sample_rate, loudness_dbfs=loudness_dbfs)
    if problems:
        for p in problems:
            prompter.say(f"  ✗ {p}")
        raise InvalidPack(out, problems)
    prompter.say(f"Xong: gói giọng hợp lệ tại {out}. / Done: valid voice pack at {out}.")
    return out


def _record_one(clip: str, text: str, i: int, n: int, seconds: float, *, recorder: Recorder, playback: Playback,
                prompter: Prompter, rate: int, loudness_dbfs: float, max_takes: int) -> array:
    for _take in range(max_takes):
        prompter.say(f"[{i}/{n}] «{text}»  ({clip})")
        if prompter.ask("Nhấn Enter rồi đọc / Enter, then speak (q = dừng/quit):") == "q":
            raise RecordingAborted("stopped by the user")
        raw = recorder.record(seconds)
        take = process_take(raw, recorder.sample_rate, phrase=is_phrase(text), sample_rate=rate,
                            loudness_dbfs=loudness_dbfs)
        if not take.ok:
            prompter.say(take.message)
            continue
        samples = take.samples
        playback.play(samples, rate)
        answer = prompter.ask("Giữ? Enter = giữ/keep, r = thu lại/redo, q = dừng/quit:")
        if answer == "q":
            raise RecordingAborted("stopped by the user")
        if answer != "r":
            return samples
    raise RecordingError(f"no usable take of {clip!r} after {max_takes} tries")
