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
from pathlib import Path
from typing import Protocol

from announcerd import pcm
from announcerd.numbers import DEFAULT_OPTIONS, ReadingOptions
from announcerd.voicepack import (
    ClipEntry,
    InvalidPack,
    Language,
    Manifest,
    catalogue,
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


def _take_problem(samples: array, rate: int) -> str:
    if len(samples) < rate * 0.08:
        return "Không nghe thấy tiếng — đọc to hơn, gần micro hơn. / Nothing heard: speak louder, closer."
    if pcm.peak_dbfs(samples) > -0.3:
        return "Tiếng bị méo (quá to) — lùi xa micro một chút. / Clipped: move back from the microphone."
    return ""


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
    wanted = sorted(required_clips(language, options, letters=letters), key=list(texts).index)
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
        seconds = phrase_seconds if " " in text else word_seconds
        samples = _record_one(clip, text, i, len(todo), seconds, recorder=recorder, playback=playback,
                              prompter=prompter, rate=sample_rate, loudness_dbfs=loudness_dbfs, max_takes=max_takes)
        pcm.write_wav(out / f"{clip}.wav", samples, sample_rate)
        kept[clip] = ClipEntry(text=text, file=f"{clip}.wav")
    manifest = Manifest(name=name or f"recorded-{language}-{dialect}", language=language,
                        dialect=dialect if language == "vi" else "", sample_rate=sample_rate,
                        loudness_dbfs=loudness_dbfs, source="recorded with xephang voice record",
                        clips=kept)
    write_pack(out, manifest, {})
    problems = validate_pack(out, options=options, letters=letters)
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
        trimmed = pcm.trim_silence(raw, recorder.sample_rate)
        problem = _take_problem(trimmed, recorder.sample_rate)
        if problem:
            prompter.say(problem)
            continue
        samples = pcm.normalise(pcm.resample(trimmed, recorder.sample_rate, rate), rate, target_dbfs=loudness_dbfs)
        playback.play(samples, rate)
        answer = prompter.ask("Giữ? Enter = giữ/keep, r = thu lại/redo, q = dừng/quit:")
        if answer == "q":
            raise RecordingAborted("stopped by the user")
        if answer != "r":
            return samples
    raise RecordingError(f"no usable take of {clip!r} after {max_takes} tries")
