"""Hearing a clip with an offline recogniser: "was «bốn» heard as bốn?"

The recogniser is viet-asr (a PyPI wheel with its model inside, Apache-2.0 code, model
provenance not stated: a development and CI tool, **not shipped** on the Pi; see
``../shared/research/voice.md`` and ``bench/voice_intelligibility.py``). It runs in its own
Python (the bench's ASR venv, ``~/.cache/xephang/asr-venv``) as one long-lived worker process
fed one WAV path per line, so webd never imports it and works the same without it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

WORKER = r'''
import json, os, sys, wave
import numpy as np
from vietasr import Pipeline
pipe = Pipeline.new().add("vietasr").build()
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    path = line.strip()
    try:
        with wave.open(path) as w:
            sr = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
        if sr != 16000:  # the model wants 16 kHz
            n = int(len(x) * 16000 / sr)
            x = np.interp(np.arange(n) * sr / 16000, np.arange(len(x)), x)
        pad = np.zeros(4000)  # a quarter second each side: a word at the very edge is often lost
        x = np.concatenate([pad, x, pad])
        print(json.dumps({"text": pipe.transcribe(x.astype(np.int16), sample_rate=16000.0).text}, ensure_ascii=False),
              flush=True)
    except Exception as exc:
        print(json.dumps({"error": str(exc)[:200]}), flush=True)
'''


def default_python() -> Path:
    """The bench's ASR venv (``bench/voice_intelligibility.py`` creates it)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "xephang" / "asr-venv" / "bin" / "python"


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
        if not py.exists():
            return None
        r = subprocess.run([str(py), "-c", "import vietasr, numpy"], capture_output=True, check=False, timeout=60)
        return cls(py) if r.returncode == 0 else None

    def _start(self) -> subprocess.Popen[str]:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen([self.python, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
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
