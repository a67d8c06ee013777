"""The viet-asr worker: one script for the head's voice page and the intelligibility bench.

It runs in the ASR venv (viet-asr and numpy only, no xephang: see ``hearing.py``), so it imports
nothing of ours and only the standard library at the top; ``numpy`` and ``vietasr`` are imported
when it runs. Start it with ``python -P`` so that its own folder is not put first on ``sys.path``
(``xephang_voice/numbers.py`` would hide the standard library's ``numbers`` from numpy). Two ways
to feed it:

- ``asr_worker.py --lines [--pad S]``: a long-lived worker (``hearing.Recogniser``). It prints
  ``{"ready": true}``, then reads one WAV path per line on stdin and answers one JSON line each,
  ``{"text": …}`` or ``{"error": …}``.
- ``asr_worker.py IN.json OUT.json [--pad S]``: a list of WAV paths in, the list of transcripts
  out (``bench/voice_intelligibility.py``; the model loads once for the whole list).

``--pad S`` adds S seconds of silence on each side before recognising. The page pads 0.25 s: a
single word recorded right at the edge of a take is often lost otherwise. The bench pads
nothing, because its calls are whole phrases with their own pauses and its published figures
were measured that way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import wave
from collections.abc import Callable
from typing import Any

RATE = 16000  # the model wants 16 kHz


def _recogniser(pad_s: float) -> Callable[[str], str]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np
    from vietasr import Pipeline

    pipe = Pipeline.new().add("vietasr").build()
    pad = np.zeros(int(round(pad_s * RATE)))

    def hear(path: str) -> str:
        with wave.open(path) as w:
            sr = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
        if sr != RATE:
            n = int(len(x) * RATE / sr)
            x = np.interp(np.arange(n) * sr / RATE, np.arange(len(x)), x)
        if len(pad):
            x = np.concatenate([pad, x, pad])
        return str(pipe.transcribe(x.astype(np.int16), sample_rate=float(RATE)).text)

    return hear


def _answer(hear: Callable[[str], str], path: str) -> dict[str, Any]:
    try:
        return {"text": hear(path)}
    except Exception as exc:  # noqa: BLE001 - one bad file must not end the worker: the caller sees why
        return {"error": str(exc)[:200]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--lines", action="store_true", help="one WAV path per stdin line, one JSON line out each")
    p.add_argument("--pad", type=float, default=0.0, help="seconds of silence added on each side")
    p.add_argument("files", nargs="*", help="IN.json OUT.json (batch mode)")
    args = p.parse_args(argv)
    if not args.lines and len(args.files) != 2:
        p.error("give --lines, or IN.json and OUT.json")
    hear = _recogniser(args.pad)
    if args.lines:
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            print(json.dumps(_answer(hear, line.strip()), ensure_ascii=False), flush=True)
        return 0
    with open(args.files[0], encoding="utf-8") as f:
        paths = json.load(f)
    out = [hear(path) for path in paths]  # batch: a bad file fails the run (the bench reports it)
    with open(args.files[1], "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
